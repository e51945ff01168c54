/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_json.c - the codec's own JSON writer (client/proto.c), as a round
 * trip.  The input is decoded as a request and as a response (any
 * transaction); whatever decodes is encoded again by our writer, and:
 *   - jansson parses the output strictly (no duplicate keys), as one object;
 *   - the output decodes again, to the same struct;
 *   - encoding that struct gives the same bytes (the writer is a function
 *     of the struct, not of the input's spelling).
 * The input also goes through lurk_proto_json_string, whose output must be
 * exactly json_dumps' for UTF-8 text (0 for anything else), and valid
 * printable-ASCII JSON with LURK_PROTO_JSON_ASCII.
 */
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "lurk_proto.h"

static int buf_eq(const lurk_buf *a, const lurk_buf *b)
{
    return a->len == b->len && (a->data == NULL) == (b->data == NULL)
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static int request_eq(const lurk_request *a, const lurk_request *b)
{
    return a->type == b->type && strcmp(a->request_id, b->request_id) == 0
           && strcmp(a->key_id, b->key_id) == 0 && a->sig_alg == b->sig_alg && a->md == b->md
           && a->salt_len == b->salt_len && buf_eq(&a->data, &b->data)
           && buf_eq(&a->digest, &b->digest) && a->dec_mode == b->dec_mode
           && a->client_version == b->client_version && a->alt_version == b->alt_version
           && a->oaep_md == b->oaep_md && buf_eq(&a->label, &b->label)
           && buf_eq(&a->ciphertext, &b->ciphertext) && buf_eq(&a->peer_key, &b->peer_key)
           && a->key_type == b->key_type && strcmp(a->policy, b->policy) == 0;
}

static int response_eq(const lurk_response *a, const lurk_response *b)
{
    return a->type == b->type && strcmp(a->request_id, b->request_id) == 0 && a->status == b->status
           && strcmp(a->description, b->description) == 0 && a->retry_after_ms == b->retry_after_ms
           && buf_eq(&a->state, &b->state) && memcmp(&a->hello, &b->hello, sizeof(a->hello)) == 0
           && a->key_type == b->key_type && strcmp(a->policy, b->policy) == 0
           && buf_eq(&a->spki, &b->spki) && buf_eq(&a->value, &b->value);
}

/* Our output: one JSON object, parsed strictly. */
static void check_json(const char *json, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);

    if (root == NULL) {
        fprintf(stderr, "jansson: %s at %d: %.*s\n", jerr.text, jerr.position, (int) len, json);
    }
    FUZZ_CHECK(root != NULL);
    FUZZ_CHECK(json_is_object(root) && json_object_size(root) == 1);
    FUZZ_CHECK(strlen(json) == len);
    json_decref(root);
}

static void round_trip_request(const char *in, size_t size)
{
    lurk_request a, b;
    char why[LURK_DESCRIPTION_MAX + 1];
    char *j1 = NULL;
    char *j2 = NULL;
    size_t l1 = 0;
    size_t l2 = 0;

    if (lurk_proto_decode_request(in, size, &a, why, sizeof(why)) != LURK_OK) {
        lurk_request_clear(&a);
        return;
    }
    FUZZ_CHECK(lurk_proto_encode_request(&a, &j1, &l1) == LURK_OK);
    check_json(j1, l1);
    if (lurk_proto_decode_request(j1, l1, &b, why, sizeof(why)) != LURK_OK) {
        fprintf(stderr, "our request does not decode: %s\n%s\n", why, j1);
        FUZZ_CHECK(0);
    }
    FUZZ_CHECK(request_eq(&a, &b));
    FUZZ_CHECK(lurk_proto_encode_request(&b, &j2, &l2) == LURK_OK);
    FUZZ_CHECK(l1 == l2 && memcmp(j1, j2, l1) == 0);
    free(j1);
    free(j2);
    lurk_request_clear(&a);
    lurk_request_clear(&b);
}

static void round_trip_response(const char *in, size_t size)
{
    lurk_response a, b;
    char why[LURK_DESCRIPTION_MAX + 1];
    char *j1 = NULL;
    char *j2 = NULL;
    size_t l1 = 0;
    size_t l2 = 0;

    if (lurk_proto_decode_response(in, size, LURK_TX__COUNT, &a, why, sizeof(why)) != LURK_OK) {
        lurk_response_clear(&a);
        return;
    }
    FUZZ_CHECK(lurk_proto_encode_response(&a, &j1, &l1) == LURK_OK);
    check_json(j1, l1);
    if (lurk_proto_decode_response(j1, l1, a.type, &b, why, sizeof(why)) != LURK_OK) {
        fprintf(stderr, "our response does not decode: %s\n%s\n", why, j1);
        FUZZ_CHECK(0);
    }
    FUZZ_CHECK(response_eq(&a, &b));
    FUZZ_CHECK(lurk_proto_encode_response(&b, &j2, &l2) == LURK_OK);
    FUZZ_CHECK(l1 == l2 && memcmp(j1, j2, l1) == 0);
    free(j1);
    free(j2);
    lurk_response_clear(&a);
    lurk_response_clear(&b);
}

static void string_writer(const char *in, size_t size)
{
    char *out = malloc(LURK_PROTO_JSON_STRING_MAX(size));
    json_t *str = json_stringn(in, size); /* NULL: not UTF-8 */
    char *dump = NULL;
    json_error_t jerr;
    json_t *back = NULL;
    size_t n;

    FUZZ_CHECK(out != NULL);
    n = lurk_proto_json_string(out, in, size, 0);
    FUZZ_CHECK((n == 0) == (str == NULL));
    if (str != NULL) {
        dump = json_dumps(str, JSON_ENCODE_ANY);
        FUZZ_CHECK(dump != NULL);
        FUZZ_CHECK(strlen(dump) == n && memcmp(dump, out, n) == 0);
        free(dump);
    }
    n = lurk_proto_json_string(out, in, size, LURK_PROTO_JSON_ASCII);
    FUZZ_CHECK(n >= 2 && n <= LURK_PROTO_JSON_STRING_MAX(size));
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(out[i] >= 0x20 && out[i] < 0x7f);
    }
    back = json_loadb(out, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    FUZZ_CHECK(back != NULL && json_is_string(back));
    if (str != NULL && memchr(in, '?', size) == NULL) {
        /* printable ASCII comes back as it was */
        int ascii = 1;

        for (size_t i = 0; i < size; i++) {
            ascii &= (unsigned char) in[i] >= 0x20 && (unsigned char) in[i] < 0x7f;
        }
        if (ascii) {
            FUZZ_CHECK(json_equal(back, str));
        }
    }
    json_decref(back);
    json_decref(str);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *) data;

    round_trip_request(in, size);
    round_trip_response(in, size);
    string_writer(in, size);
    return 0;
}
